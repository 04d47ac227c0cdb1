"""The Azure ACI provider: ``profile`` declares it to the core, ``provider`` speaks to ARM."""
