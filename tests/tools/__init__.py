"""The tools that are not deployed: benchmarks, the simulator, the CLI."""
