"""The benchmark contract (``openapi.yaml``), its generated package, the shared handler work
(``handlers``) and the four ways of serving it (``apps``)."""
