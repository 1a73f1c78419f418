"""Fused top-K dot product (written by the top-K work)."""


def topk_dot(*args, **kwargs):
    raise NotImplementedError("topk_dot is being written")
