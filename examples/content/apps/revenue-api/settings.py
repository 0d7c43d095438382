REGIONS = ("emea", "americas", "apac")
