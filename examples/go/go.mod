module keyward.example/walkthrough

go 1.19
