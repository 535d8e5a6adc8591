"""Helpers for this project's tests and benchmarks (and for users testing their own scale-out
recipes): throwaway servers that start and clean up after themselves."""

from hybridunet.testing.mlflow_server import mlflow_server
from hybridunet.testing.postgres import PostgresCluster, PostgresUnavailable, postgres_cluster

__all__ = ["PostgresCluster", "PostgresUnavailable", "mlflow_server", "postgres_cluster"]
