"""The product's jobs, composed from the library: ask (retrieve, answer, sign, pin, assert), resume, settle."""
