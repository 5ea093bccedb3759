"""The fleet's shared state in Redis: the only package that talks to Redis.

Its key layout is written down once in `framefleet.state.keys`; its scripts are ``.lua`` files
under ``lua/`` (`framefleet.state.scripts`); `framefleet.state.connection` rides out Redis
restarts; `FleetState` gathers the stores (jobs, leases, videos, follow, control, presence).
"""
