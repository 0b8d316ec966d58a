from devenv.cli.main import main

main()
