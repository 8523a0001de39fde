from swiftfleet.cli import main

main()
