"""Jobs: the /opt/ml contract, CreateTrainingJob requests, local jobs and manifest snapshots (no MXNet)."""
