"""Half-FPN bottleneck (MambaAD's MFF/OCE): fuse three encoder scales into one map."""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import Bottleneck


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class HalfFPN(nn.Module):
    """layer1 -3x3/2-> (+1x1 layer2) -3x3/2-> (+1x1 layer3) -1x1-> 3 Bottlenecks (stride 2).

    With ResNet34's (64, 128, 256) channels this is the paper's module exactly;
    other encoders are first projected to the same widths scaled by ``width``.
    """

    def __init__(self, in_channels: tuple[int, int, int], out_channels: int = 512, blocks: int = 3):
        super().__init__()
        c1, c2, c3 = in_channels
        w2, w3 = out_channels // 4, out_channels // 2  # 128 and 256 for the paper's 512
        self.down1 = _conv_bn_relu(c1, w2, 3, 2)
        self.lat2 = _conv_bn_relu(c2, w2, 1)
        self.down2 = _conv_bn_relu(w2, w3, 3, 2)
        self.lat3 = _conv_bn_relu(c3, w3, 1)
        self.fuse = _conv_bn_relu(w3, w3, 1)
        width = out_channels // Bottleneck.expansion
        down = nn.Sequential(nn.Conv2d(w3, out_channels, 1, 2, bias=False), nn.BatchNorm2d(out_channels))
        layers = [Bottleneck(w3, width, stride=2, downsample=down)]
        layers += [Bottleneck(out_channels, width) for _ in range(blocks - 1)]
        self.blocks = nn.Sequential(*layers)
        for m in self.modules():  # the reference code's MFF/OCE init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats):
        f1, f2, f3 = feats
        x = self.down1(f1) + self.lat2(f2)
        x = self.down2(x) + self.lat3(f3)
        return self.blocks(self.fuse(x))
