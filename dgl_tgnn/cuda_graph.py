"""A training step captured once in a CUDA graph and replayed: one launch for its hundreds of kernels."""

from __future__ import annotations

from collections.abc import Callable

import torch


class GraphedStep:
    """Runs ``step(inputs)`` on the current CUDA device: captured once in a CUDA graph, then replayed.

    A GPU training step of small batches queues hundreds of small kernels (forward, backward,
    optimizer); launching them one by one from Python costs more host time than the GPU needs to run
    them. A graph queues them all at once. A replay reruns the captured kernels on the tensors at the
    addresses they had during capture, so ``step`` must:

    * read the data of a call only from ``inputs`` (copied into the captured input tensor before
      each replay) and from tensors updated in place (parameters, optimizer state, buffers);
    * never synchronise with the host (no ``.item()``, no data-dependent output sizes);
    * take no host value that changes between calls (a Python float of the batch, a seed drawn on
      the host); random numbers of torch's default CUDA generator and of ``generators`` are fine
      (each replay draws new ones, as eager calls do).

    The first call runs eagerly on a side stream (the warm-up: optimizer state, library workspaces
    and the like are created before capture, as PyTorch prescribes); the second captures the step
    and replays it once; later calls replay. The outputs of a replay are the graph's own tensors,
    overwritten by the next replay.

    Args:
        step: ``inputs -> outputs``: a tensor of one shape and dtype every call, on the device,
            to a tuple of tensors.
        generators: CUDA generators other than torch's default one that ``step`` draws from.
    """

    def __init__(
        self,
        step: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
        generators: tuple[torch.Generator, ...] = (),
    ) -> None:
        self.step = step
        self.generators = generators
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: torch.Tensor | None = None
        self.outputs: tuple[torch.Tensor, ...] = ()
        self.warmed_up = False

    @property
    def captured(self) -> bool:
        """True once the step is captured: the next call is a replay."""
        return self.graph is not None

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The outputs of ``step`` for ``inputs`` (on the host, best pinned, or on the device)."""
        if self.graph is not None:
            assert self.inputs is not None
            self.inputs.copy_(inputs, non_blocking=True)
            self.graph.replay()
            return self.outputs
        device = torch.device("cuda", torch.cuda.current_device())
        if not self.warmed_up:
            self.warmed_up = True
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                outputs = self.step(inputs.to(device, non_blocking=True))
            torch.cuda.current_stream(device).wait_stream(side)
            return outputs
        self.inputs = inputs.to(device, non_blocking=True)
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph):
            self.outputs = self.step(self.inputs)
        self.graph = graph
        graph.replay()
        return self.outputs
