"""Tools a person runs over the package, thin shells the CLI calls: `doctor` (machine check), `pictures` (sheets of
episodes, conditions and assets), `bench` (throughput next to ManiSkill), `inspect` (what a demo dataset holds)."""
