from newage.cli import main

main()
