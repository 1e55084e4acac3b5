"""`genredream tag`: genre tags for a whole music library, one row per file.

* :mod:`.files`    walks folders, recognises audio by extension and content, keys files for ``--resume``;
* :mod:`.windows`  streams one file through decoding, resampling and the mel front ends, cutting windows;
* :mod:`.tagger`   holds the models and scores windows batched across files;
* :mod:`.output`   rows, columns and the .csv/.jsonl/.parquet writers;
* :mod:`.local`    the embedded executor (worker processes, one torch thread each);
* :mod:`.ray_run`  the same job on Ray Data;
* the command line and its progress bar: :mod:`genredream.engine.cli.tag`.
"""
