"""The headless player: ABR algorithms, buffer/playback model, QoE and the trace simulator.

Pure core: :mod:`player_sim.session` (one session's state machine: events in, actions
out; it owns the algorithm, the playback model and the QoE), :mod:`player_sim.abr`
(algorithms by name), :mod:`player_sim.playback`, :mod:`player_sim.qoe`,
:mod:`player_sim.link`. Drivers of the session core: :mod:`player_sim.sim` (virtual time
over the link model) and :mod:`player_sim.player` with :mod:`player_sim.transfer` (real
HTTP, ``abr play``). Other shells: :mod:`player_sim.sweep`, :mod:`player_sim.report`,
:mod:`player_sim.cli`.
"""
