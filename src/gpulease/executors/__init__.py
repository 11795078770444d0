"""Executors: back ends that run scheduled work on real resource managers."""
