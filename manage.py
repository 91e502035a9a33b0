#!/usr/bin/env python
from homelink.cli import main

if __name__ == "__main__":
    main()
