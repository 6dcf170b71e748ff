"""``python -m occo_deploy`` runs the CLI."""

from occo_deploy.cli.app import main

main()
