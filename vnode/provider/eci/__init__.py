"""The Alibaba ECI provider: ``profile`` declares it to the core, ``provider`` speaks to the cloud."""
