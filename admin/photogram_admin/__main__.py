from photogram_admin.cli import main

raise SystemExit(main())
