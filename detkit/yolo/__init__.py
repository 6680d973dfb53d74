"""YOLOv2-style detection, modules in dependency order: ``config`` (the options), ``priors`` (anchors),
``model``, ``targets``, ``loss``, ``decode``; the data pipeline (``sampler``, ``splits``, ``data``); one epoch
and evaluation (``engine``), a run's set-up (``setup``), its checkpoints and side files (``checkpoint``), the
epoch loop and resume (``train``); eval/predict from a checkpoint (``predict``) and the ``detkit yolo``
commands (``cli``)."""
