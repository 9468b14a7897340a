"""Lab 05 part 2: the same Deployment on a real Kubernetes cluster (kind), driven from Python."""
