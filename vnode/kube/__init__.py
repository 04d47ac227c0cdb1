"""The only code that speaks to the Kubernetes API: config, a lean async client, typed partial objects, informers."""
