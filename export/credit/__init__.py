"""`python -m export credit`: the credit scoring models, trained on the Taiwan card holders'
data and exported into the Triton model repository as `credit_model`."""
