"""The lowest layer: what every other package may import (stdlib and numpy only).

- :mod:`basics.errors`: the one error base class (:class:`~basics.errors.TwinError`)
  and :class:`~basics.errors.InputError`;
- :mod:`basics.atomic`: atomic writing of files and run folders;
- :mod:`basics.clock`: reading durations and clock times, writing ``HH:MM``;
- :mod:`basics.numeric`: numeric tolerances.

Nothing here imports another package of the project.
"""
