"""Training's pieces that need no data: the mean of the weights over the last epochs."""

import torch
from torch import nn

from export.train import TailAverage


def test_the_tail_average_is_the_mean_of_the_weights_it_was_given():
    model = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    model.register_buffer("steps", torch.tensor([7]))  # not a weight: left as it is
    tail = TailAverage()
    seen = []
    for scale in (1.0, 2.0, 6.0):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(scale)
        seen.append(model[0].weight.clone())
        tail.add(model)
    model.steps.fill_(9)
    tail.load_into(model)
    torch.testing.assert_close(model[0].weight, torch.stack(seen).mean(dim=0))
    torch.testing.assert_close(model[1].bias, torch.full((2,), 3.0))
    assert model.steps.item() == 9
