terraform {
  required_version = ">= 1.5.0"

  required_providers {
    # >= 6.27: aws_api_gateway_integration's response_transfer_mode (streaming.tf).
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.27, < 7.0"
    }
    # random_password: the llm-usage page-token key (secrets.tf).
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}
