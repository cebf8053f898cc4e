from gt2seg.cli import main

main()
