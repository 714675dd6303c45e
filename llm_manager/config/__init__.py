"""The config document: parsed and validated once into typed, frozen objects."""
