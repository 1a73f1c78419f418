"""TemporalGraph: timestamped events and their time-sorted CSR (written by the sampler work)."""


class TemporalGraph:
    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError("TemporalGraph is being written")
