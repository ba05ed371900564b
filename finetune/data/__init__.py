"""Reading the data: splits from files or the Hub, column and file checks, lengths, long inputs."""
