"""Genre generators (Doyle & Lopez): model files, training, generation, evaluation.

A generator continues audio: it takes 0.9 s of 10 kHz audio and predicts the
next 0.1 s (:class:`genredream.models.archs.doyle_gru.DoyleGRU`), one network per genre.
Generating is autoregressive, as in the paper: the prediction is appended and
the newest 0.9 s is the next input.

* :mod:`genredream.models.generator.file`: the generator file (metadata, load,
  validate, save) and where generators are found;
* :mod:`genredream.models.generator.train`: training one genre's network;
* :mod:`genredream.models.generator.stepper`: the autoregressive step and :func:`generate`;
* :mod:`genredream.models.generator.evaluate`: the paper's Figure 7 (imported on its own).

The commands ``train-generator``, ``generate`` and ``evaluate-generator`` are
in ``engine/cli/``.
"""

from genredream.models.generator.file import (
    GENERATOR_TASK,
    GENERATORS_DIR,
    GeneratorFile,
    build_generator,
    check_generator_meta,
    find_generator,
    generator_dirs,
    list_generators,
    load_generator,
    read_generator_meta,
    save_generator,
    validate_generator,
)
from genredream.models.generator.stepper import Stepper, generate, rms_db
from genredream.models.generator.train import TrainGeneratorConfig, train_generator

__all__ = [
    "GENERATOR_TASK",
    "GENERATORS_DIR",
    "GeneratorFile",
    "Stepper",
    "TrainGeneratorConfig",
    "build_generator",
    "check_generator_meta",
    "find_generator",
    "generate",
    "generator_dirs",
    "list_generators",
    "load_generator",
    "read_generator_meta",
    "rms_db",
    "save_generator",
    "train_generator",
    "validate_generator",
]
