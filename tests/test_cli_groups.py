"""The `groups` command end to end, and the bad-input contract: one clear line, non-zero exit."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from isodeploy import __version__
from isodeploy.cli import app, main
from isodeploy.core.errors import IsodeployError
from isodeploy.graph.analysis import analyze


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_and_help_for_every_command(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and __version__ in out
    names = [c.name for c in app.registered_commands]
    assert {"groups", "presets"} <= set(names)
    for name in names:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and "Usage" in out, name


def test_groups_json_schema(tmp_path, capsys):
    path = tmp_path / "g.json"
    code, out, _ = run(capsys, "groups", "resnet18", "--weights", "random", "--img-size", "64", "--json", str(path))
    assert code == 0
    assert "Isomorphic classes of resnet18" in out
    data = json.loads(path.read_text())
    assert data["model"] == "resnet18"
    assert data["classes"] and all({"id", "kind", "signature", "groups"} <= set(c) for c in data["classes"])
    group = data["classes"][0]["groups"][0]
    assert {"width", "heads", "params"} <= set(group) and all(":" in p for p in group["params"])
    assert {u["param"] for u in data["unprunable"]} >= {"conv1.weight:1", "fc.weight:0"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["groups", "resnt18", "--weights", "random"], "unknown model 'resnt18'. Did you mean: resnet18"),
        (["groups", "deit_t", "--weights", "random", "--img-size", "8"], "can't take --img-size 8"),
        (["groups", "resnet18", "--weights", "/no/such/file.pth"], "'pretrained', 'random' or an existing file"),
    ],
)
def test_bad_input_is_one_line(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code != 0
    assert message in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_bad_weight_files(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    code, _, err = run(capsys, "groups", "resnet18", "--weights", str(corrupt))
    assert code != 0 and "could not be read" in err

    import timm
    from safetensors.torch import save_file

    other = tmp_path / "resnet34.safetensors"
    save_file(timm.create_model("resnet34").state_dict(), str(other))
    code, _, err = run(capsys, "groups", "resnet18", "--weights", str(other))
    assert code != 0 and "unexpected key 'layer1.2." in err

    mismatched = tmp_path / "wide.pth"
    state = timm.create_model("resnet18").state_dict()
    state["fc.weight"] = torch.zeros(10, 512)
    torch.save(state, mismatched)
    code, _, err = run(capsys, "groups", "resnet18", "--weights", str(mismatched))
    assert code != 0 and "key 'fc.weight' has shape (10, 512)" in err


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        x = self.fc(x)
        if x.sum() > 0:  # data-dependent control flow: torch.export can't trace it
            return x
        return -x


def test_model_that_fails_to_export_says_which_and_why():
    with pytest.raises(IsodeployError, match=r"model 'ddc' failed to export with torch.export \("):
        analyze(_DataDependent(), torch.randn(2, 4), name="ddc")

