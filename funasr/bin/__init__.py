"""Console entry points: funasr (cli) and funasr-export."""
