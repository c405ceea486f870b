from latentzoo.cli import main

main()
