"""Sub-commands of `v1recon`, one module each; every module registers its command on `v1recon.cli.app`."""
