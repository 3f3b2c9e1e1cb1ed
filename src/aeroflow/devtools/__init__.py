"""Developer tooling: local emulators and the emulator demo. Never imported by the service."""
