"""Looking at datasets in FiftyOne: media materialised from Parquet, grouped FiftyOne datasets."""
