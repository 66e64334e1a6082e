import sys

from auth_service.cli import main

sys.exit(main())
