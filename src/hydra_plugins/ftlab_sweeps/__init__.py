"""ftlab's Hydra plugins (found by Hydra's ``hydra_plugins`` namespace scan): sweepers and launchers.

Hydra imports every module here at each start, so they import only Hydra and the standard library;
the work happens in ``ftlab.sweeps``. Config schemas are in ``config.py``.
"""
