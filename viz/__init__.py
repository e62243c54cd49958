"""Reports, maps and 3D scenes of the twin's results.

``viz`` only reads what the twin wrote (run folders from ``twin run``,
comparison folders from ``twin compare``); it never runs a simulation.

- :mod:`viz.data`: open a folder (:func:`~viz.data.open_results`), pick an
  output interval by clock time, derive network speed, intervened links,
  incidents and stations;
- :mod:`viz.charts`: matplotlib figures (time series, link maps, travel
  times, KPI changes);
- :mod:`viz.report`: the self-contained HTML report (``twin report``);
- :mod:`viz.scene`: the pyvista 3D scene, PNG and gif/mp4 (``twin render``);
- :mod:`viz.webscene`: the scene as offline interactive HTML (vtk.js).
"""
