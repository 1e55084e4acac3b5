"""The seed architectures, by id, with their default training recipes.

:data:`ARCHS` maps an architecture id to a factory ``build(labels) ->
(module, meta)``: an untrained ``torch.nn.Module`` (scriptable with
``torch.jit.script``) and the metadata dict that
:func:`genredream.models.contract.save` writes into the model file.

:data:`RECIPES` maps the same ids to the training recipe each paper used,
filled in with our choices where the paper is silent (marked in the
comments). Every recipe has the keys

``optimizer`` ("sgd" or "adam"), ``lr``, ``momentum``, ``nesterov``,
``batch_size``, ``epochs``, ``weight_decay``, ``loss`` ("cross_entropy"),
``source`` (what the numbers come from)

and may add arch-specific hints (``val_split``, ``test_split``,
``segments_per_file``) that ``models/train.py`` can use or ignore.

Every model sees a 5 s window at its own sample rate:

========  =====  ========  =====================================================
id        input  rate Hz   front end (n_fft / hop / n_mels, scaling) -> shape
========  =====  ========  =====================================================
geng      wave   8000      ``[B, 40000]``
zheng     mel    22050     2048 / 1024 / 128, db (min-max in forward) -> 128x108
lidy1-3   mel    22050     1536 / 768 / 40, log10 -> 40x144 (3 segments of 80)
smith     mel    22050     2048 / 864 / 128, db -> 128x128
doyle     mel    22050     2048 / 512 / 128, db -> 128x216
========  =====  ========  =====================================================
"""

from typing import Any, Callable, Dict, List, Tuple

from torch import nn

from . import doyle, geng, lidy, musicnn, smith, zheng
from ._common import WINDOW_SECONDS, GenreNet, MelNet

__all__ = ["ARCHS", "RECIPES", "WINDOW_SECONDS", "GenreNet", "MelNet", "build"]

Factory = Callable[[List[str]], Tuple[nn.Module, Dict[str, Any]]]

ARCHS: Dict[str, Factory] = {
    "geng": geng.build,
    "zheng": zheng.build,
    "lidy1": lidy.build_lidy1,
    "lidy2": lidy.build_lidy2,
    "lidy3": lidy.build_lidy3,
    "smith": smith.build,
    "doyle": doyle.build,
    # Pons & Serra 2019; the shipped files are converted from the authors'
    # checkpoints (scripts/convert_musicnn.py); training one here is possible.
    "musicnn": musicnn.build,
}


def _recipe(optimizer, lr, batch_size, epochs, source, momentum=0.0, nesterov=False, weight_decay=0.0, **extra):
    return dict(
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        batch_size=batch_size,
        epochs=epochs,
        weight_decay=weight_decay,
        loss="cross_entropy",
        source=source,
        **extra,
    )


_LIDY = _recipe(
    # Lidy & Schindler 2016, Sec. 2.4: SGD, constant lr 0.02, mini-batch 40, 150 epochs.
    # Sec. 2.1: 30 random segments per file (here: 30 random 5 s windows per file).
    "sgd",
    0.02,
    40,
    150,
    "Lidy & Schindler 2016, Sec. 2.1 and 2.4",
    segments_per_file=30,
)

RECIPES: Dict[str, Dict[str, Any]] = {
    # Geng et al. 2017, Sec. 2: Nesterov accelerated mini-batch gradient descent,
    # twenty epochs. lr 0.01, momentum 0.9 and batch 64 are our choice (not given).
    "geng": _recipe("sgd", 0.01, 64, 20, "Geng et al. 2017, Sec. 2 (lr, momentum, batch: ours)", momentum=0.9, nesterov=True),
    # Zheng Sec. IV.C-D: 20 % test split; overfits after about 15 epochs;
    # categorical cross-entropy. Optimizer not given: Adam at Keras' default lr 1e-3, batch 32.
    "zheng": _recipe("adam", 1e-3, 32, 15, "Zheng, Sec. IV.C-D (optimizer, lr, batch: ours)", test_split=0.2),
    "lidy1": dict(_LIDY),
    "lidy2": dict(_LIDY),
    "lidy3": dict(_LIDY),
    # Smith Sec. 3: 90/10 train/validation per chunk; song-level test separation
    # (Sec. 2.1). Optimizer, lr, batch, epochs not given: Adam 1e-3, batch 32, 30 epochs.
    "smith": _recipe("adam", 1e-3, 32, 30, "Smith, Sec. 2.1 and 3 (optimizer, lr, batch, epochs: ours)", val_split=0.1),
    # Doyle & Lopez Sec. 2.2: Adam, lr 0.0001. Batch 32 and 50 epochs are ours.
    "doyle": _recipe("adam", 1e-4, 32, 50, "Doyle & Lopez, Sec. 2.2 (batch, epochs: ours)"),
    # musicnn's config.json: Adam, lr 1e-3, batch 32, weight decay 1e-5; the
    # authors stopped early, 50 epochs is our cap.
    "musicnn": _recipe("adam", 1e-3, 32, 50, "musicnn config.json (epochs: ours)", weight_decay=1e-5),
}

assert set(RECIPES) == set(ARCHS)


def build(arch: str, labels: List[str]) -> Tuple[nn.Module, Dict[str, Any]]:
    """``ARCHS[arch](labels)`` with a helpful error for an unknown id."""
    try:
        factory = ARCHS[arch]
    except KeyError:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}") from None
    return factory(labels)
