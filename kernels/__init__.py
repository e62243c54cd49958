"""Numba kernels on arrays: the numerical core, importing only numpy, numba and ``basics``.

Each module follows stumpy's layering: a public, plain-Python wrapper checks its arguments
(dtypes, shapes, lengths, index ranges; :class:`basics.errors.InputError` naming the argument)
and calls a private ``@njit`` kernel, whose loops run unchecked; related arrays travel as
NamedTuples.  Scalar building blocks that are inlined into kernels are public but unchecked.

- :mod:`kernels.traffic` -- the link transmission model (:func:`~kernels.traffic.advance`) and
  its state (``Links``, ``Nodes``, ``LinkState``, ``Vehicles``, ``Routes``);
  :mod:`kernels.junction` (signals, priority gap acceptance) and :mod:`kernels.route_choice`
  (the next link at a node) are inlined into it; :mod:`kernels.traffic_state` reads and
  maintains its state between advances.
- :mod:`kernels.routing` -- shortest paths and route tables over a checked ``Graph``; the
  kernels are in :mod:`kernels._paths`.
- :mod:`kernels.choice`, :mod:`kernels.agents` -- the population's batched logit choices and
  where travellers are.
- :mod:`kernels.assimilation` -- the ensemble Kalman update and the sensor-crossing
  observation operator.
- :mod:`kernels._checks`, :mod:`kernels._jit` -- the wrappers' checks, and ``njit`` typed for mypy.
"""
