"""Training, split by responsibility.

* ``build``: a run from its config (events, split, features, model, optimizer, neighbour sampler).
* ``step``: the training step of a batch, eager and CUDA-graphed (``TrainingStep``).
* ``loop``: epochs, early stopping, checkpoints, resume and Ctrl-C (``Trainer``).
* ``evaluate``: evaluation after each epoch and of a saved model (``evaluate_checkpoint``).
* ``checkpoints``: checkpoint files, read safely and written atomically.
* ``tgb``: TGB's negative sets and EdgeBank under TGB's protocol (``fit_edgebank``).
* ``report``: the lines a run prints.
* ``threads``: torch's CPU thread count while other processes keep the machine busy.

``dgl_tgnn.train`` gathers the names the command line and the scripts use.
"""
