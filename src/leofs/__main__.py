from leofs.cli.main import main

main()
