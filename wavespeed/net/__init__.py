"""HTTP: the REST client, its retry/deadline loop and socket watchdog, downloads, reference uploads and URL checks."""
