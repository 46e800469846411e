from fastnn.cli import main  # `python -m fastnn`: the command line lives in fastnn/cli/
if __name__ == "__main__": raise SystemExit(main())  # noqa: E701
