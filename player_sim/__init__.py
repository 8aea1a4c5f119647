"""The headless player: ABR algorithms, buffer/playback model, QoE and the trace simulator.

Pure core: :mod:`player_sim.abr` (algorithms by name), :mod:`player_sim.playback`,
:mod:`player_sim.qoe`, :mod:`player_sim.link`. Shells: :mod:`player_sim.sim` (virtual
time), :mod:`player_sim.sweep`, :mod:`player_sim.report`, :mod:`player_sim.cli`.
"""
