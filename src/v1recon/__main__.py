from v1recon.cli import main

main()
