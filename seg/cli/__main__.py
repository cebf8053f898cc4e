from seg.cli import main

main()
