"""The peers the benchmarks measure asrpool against: their virtualenvs, servers, clients."""
