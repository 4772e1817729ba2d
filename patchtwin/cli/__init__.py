"""The composition root: the only part of patchtwin that knows every service.

`app` assembles services into a process, `commands` is the `patchtwin` command line
(`commands:main`), and `client`, `watch`, `views`, `demo`, `embedded`, `asyncapi` and `docs`
are what those commands use."""
