"""`python -m export xray`: the chest X-ray classifier, trained on PneumoniaMNIST and exported
into the Triton model repository as `xray_classifier`."""

# Training epochs: the default build, and the quick one `make up` runs (README, "Image diagnosis")
EPOCHS = 30
QUICK_EPOCHS = 10
