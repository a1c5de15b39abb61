"""The series model: patches, statistics, upstream history and the state files."""
