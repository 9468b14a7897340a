"""What a lab does to a running cluster, shared by its checks, `workshop demo` and its notebook."""
