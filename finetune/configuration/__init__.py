"""How a run is described: the YAML schema, strict YAML reading, paths and overrides."""
